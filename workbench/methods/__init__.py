"""workbench.methods"""

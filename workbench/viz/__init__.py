"""workbench.viz"""

"""workbench.render"""

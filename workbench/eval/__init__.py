"""workbench.eval"""

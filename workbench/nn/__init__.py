"""workbench.nn"""

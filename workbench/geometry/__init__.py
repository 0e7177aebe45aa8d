"""workbench.geometry"""

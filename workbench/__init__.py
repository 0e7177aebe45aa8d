"""workbench: a Jupyter-driven research and teaching workbench for 3D-aware object understanding."""
__version__ = "0.1.0"

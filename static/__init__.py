"""The live monitor's web pages, installed as the package ``stream.static`` (mapped in pyproject.toml).

The folder stays at the repository root; the server finds the pages with importlib.resources, which works
for editable and non-editable installs alike.
"""

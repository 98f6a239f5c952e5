"""The loader's version (pyproject.toml's), in a module of its own: `hub` names it without importing the
package."""

__version__ = "0.1.0"

"""Imports a dependency that is not installed, as a package with a broken install would."""
import genlab_ext_missing_dependency  # noqa: F401

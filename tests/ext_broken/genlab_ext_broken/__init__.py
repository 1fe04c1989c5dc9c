"""A model package whose entry point fails to import (genlab's tests of that error)."""

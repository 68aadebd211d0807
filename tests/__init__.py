"""The tests, a regular package: `from tests.conftest import ...` finds this folder before any other
installed package named `tests` (torch-fidelity 0.4 installs one into site-packages)."""

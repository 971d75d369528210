"""Apps: each sub-package is one capability built on the kernel."""

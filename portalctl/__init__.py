"""portalctl: the portal's command-line client for deploy pipelines.

A plain HTTP client of the portal's API and ``/health/...`` reads: it imports neither Django
nor any of the portal's apps, so it runs anywhere the package is installed, far from the
portal itself.
"""

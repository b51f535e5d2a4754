"""Fixtures of the security tests: the e2e namespace with the installed operator, and the
installed API, as the attacks need them."""

from api.conftest import kubernetes_api, other_namespace, standalone_api  # noqa: F401
from e2e.conftest import cluster, crd, sample_data  # noqa: F401

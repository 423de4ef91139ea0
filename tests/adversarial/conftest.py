"""The adversarial suite reuses the admin API's fixtures (real app, real backends)."""

from tests.admin_api.conftest import (  # noqa: F401
    api,
    api_env,
    local_api,
    password_hash,
    sources,
    upload_via,
)
from tests.origin.delivery.conftest import service, service_env  # noqa: F401

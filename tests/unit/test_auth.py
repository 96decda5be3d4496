"""The auth strategies the settings accept are exactly those the API implements."""

from craton.api.auth import STRATEGIES
from craton.config import AUTH_STRATEGIES


def test_settings_and_api_agree_on_the_auth_strategies() -> None:
    assert set(STRATEGIES) == set(AUTH_STRATEGIES)

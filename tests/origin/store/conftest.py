"""Each repository of origin.store over the migrated ``database`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from origin.store.database import Database
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.keys import SigningKeys
from origin.store.users import Users


@pytest.fixture
def users(database: Database) -> Users:
    return Users(database)


@pytest.fixture
def images(database: Database) -> Images:
    return Images(database)


@pytest.fixture
def derivatives(database: Database) -> Derivatives:
    return Derivatives(database)


@pytest.fixture
def keys(database: Database) -> SigningKeys:
    return SigningKeys(database)

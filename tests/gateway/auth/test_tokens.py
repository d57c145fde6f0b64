"""Bearer tokens (gateway.auth.tokens): one source's token opens that source only, and argon2 runs
once per token, whether it verified or not."""

import pytest

from gateway.auth import tokens as tokens_module
from gateway.auth.secrets import hash_secret
from gateway.auth.tokens import BearerTokens
from gateway.config import parse_config
from gateway.engine.types import Role
from gateway.users.service import Actor

A, B, ADMIN = "token-of-source-a", "token-of-source-b", "token-of-the-admin"


@pytest.fixture(scope="module")
def config():
    return parse_config(
        {
            "admins": [{"name": "ops", "role": "help_desk", "token_hash": hash_secret(ADMIN)}],
            "sources": [
                {"id": "a", "kind": "scim", "token_hash": hash_secret(A)},
                {"id": "b", "kind": "entra", "token_hash": hash_secret(B)},
            ],
        }
    )


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = tokens_module.verify_secret

    def verify(hash_, secret):
        calls.append(secret)
        return real(hash_, secret)

    monkeypatch.setattr(tokens_module, "verify_secret", verify)
    return calls


def test_a_source_token_opens_its_own_source_only(config):
    tokens = BearerTokens(config)
    assert tokens.verify_source("a", A)
    assert not tokens.verify_source("b", A)
    assert tokens.verify_admin(A) is None
    assert tokens.verify_source("b", B)
    assert tokens.verify_admin(ADMIN) == Actor("ops", Role.HELP_DESK)
    assert not tokens.verify_source("a", ADMIN)


def test_unknown_source_and_empty_token_are_refused_without_argon2(config, counted):
    tokens = BearerTokens(config)
    assert not tokens.verify_source("nope", A)
    assert not tokens.verify_source("a", "")
    assert tokens.verify_admin("") is None
    assert counted == []


def test_argon2_runs_once_per_token_right_or_wrong(config, counted):
    tokens = BearerTokens(config)
    for _ in range(3):
        assert tokens.verify_source("a", A)
        assert not tokens.verify_source("a", "wrong")
    assert counted == [A, "wrong"]
    assert tokens.known(A) == "source:a"
    assert tokens.known("wrong") is None


def test_a_token_refused_for_one_source_still_opens_its_own(config):
    tokens = BearerTokens(config)
    assert not tokens.verify_source("a", B)
    assert tokens.verify_admin(B) is None
    assert tokens.verify_source("b", B)

"""fleet.aws: sessions keep their own settings but share the parsed service models."""

from __future__ import annotations

from fleet import aws


def test_sessions_share_one_loader_but_not_their_settings():
    west, east = aws.session(region="eu-west-1"), aws.session(region="us-east-1")
    loader = west._session.get_component("data_loader")
    assert east._session.get_component("data_loader") is loader
    assert (west.region_name, east.region_name) == ("eu-west-1", "us-east-1")
    assert west._session is not east._session  # credentials and handlers stay per session


def test_the_shared_loader_does_not_grow_with_each_session():
    loader = aws.session()._session.get_component("data_loader")
    paths = list(loader.search_paths)
    for _ in range(3):
        aws.session()
    assert loader.search_paths == paths
    assert len(set(paths)) == len(paths)


def test_a_client_parses_its_model_once_per_process(monkeypatch):
    from botocore.loaders import JSONFileLoader

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    aws.client(None, "ssm")
    opened: list[str] = []
    original = JSONFileLoader.load_file
    monkeypatch.setattr(
        JSONFileLoader, "load_file", lambda self, path: opened.append(path) or original(self, path)
    )
    aws.client(None, "ssm")
    assert opened == []

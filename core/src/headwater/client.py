"""``headwater.Client``: the root of ``client.OBJECT.ACTION``; its nouns come from plugins.

The core knows no HTTP: ``client.<noun>(**kwargs)`` builds the class a plugin registered under
that name in the ``client_resource`` registry (``register_client_resources`` hook), passing
``client=self``. Two nouns are special: ``transport`` (``.graphql(query, variables)``) and
``registration`` (``.register(flow, project_name=..., **options)``); the headwater-cloud-api
plugin provides both, and ``flow``, ``flow_run``, ``project`` ... ::

    client = Client()                         # [cloud] api / api_key from the config
    client.project(name="MDS").create()
    client.flow_run(id="...").cancel()
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "MissingClientResourceError"]

INSTALL_HINT = "pip install headwater-cloud-api"


class MissingClientResourceError(AttributeError):
    """No installed plugin provides this client noun."""


class Client:
    """A client of the orchestration API.

    ``api`` and ``api_key`` default to what the plugin's transport says (headwater-cloud-api:
    ``[cloud] api`` / ``api_key``, i.e. ``HEADWATER__CLOUD__API`` / ``HEADWATER__CLOUD__API_KEY``);
    other keyword arguments are kept in ``options`` for the transport (e.g. ``timeout``).
    """

    def __init__(self, api: str | None = None, api_key: str | None = None, **options: Any) -> None:
        if api is None or api_key is None:
            defaults = self._transport_defaults()
            api = api if api is not None else defaults.get("api")
            api_key = api_key if api_key is not None else defaults.get("api_key")
            if "timeout" in defaults:
                options.setdefault("timeout", defaults["timeout"])
        self.api: str | None = api
        self.api_key: str | None = api_key
        self.options: dict[str, Any] = options
        self._transport: Any = None

    def __repr__(self) -> str:
        return f"<Client api={self.api!r}>"

    @staticmethod
    def _transport_defaults() -> dict[str, Any]:
        from headwater.plugins._manager import registry

        reg = registry("client_resource")
        if "transport" not in reg:
            return {}
        defaults = getattr(reg.get("transport"), "defaults", None)
        return dict(defaults()) if callable(defaults) else {}

    # --- nouns --------------------------------------------------------------------------------

    @staticmethod
    def resource_names() -> list[str]:
        """The nouns installed plugins provide."""
        from headwater.plugins._manager import registry

        return registry("client_resource").names()

    def _resource_class(self, name: str) -> Any:
        from headwater.plugins._manager import registry

        reg = registry("client_resource")
        if name not in reg:
            known = ", ".join(n for n in reg.names() if n not in ("transport", "registration")) or "none"
            raise MissingClientResourceError(
                f"headwater.Client has no {name!r}: no installed plugin provides it (installed nouns: {known}). "
                f"The orchestration API client comes with a plugin: {INSTALL_HINT}"
            )
        return reg.get(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = self._resource_class(name)

        def build(**kwargs: Any) -> Any:
            return cls(client=self, **kwargs)

        build.__name__ = name
        build.__doc__ = cls.__doc__
        return build

    # --- root-level actions -------------------------------------------------------------------

    @property
    def transport(self) -> Any:
        """The plugin's transport for this client (built once)."""
        if self._transport is None:
            self._transport = self._resource_class("transport")(client=self)
        return self._transport

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a raw GraphQL request; returns its ``data`` (errors raise)."""
        return self.transport.graphql(query, variables=variables)

    def register(self, flow: Any, project_name: str, **options: Any) -> str:
        """Register ``flow`` (a Flow) in ``project_name``: build its storage, send its metadata; returns the flow id."""
        return self._resource_class("registration")(client=self).register(flow, project_name=project_name, **options)

    def close(self) -> None:
        if self._transport is not None and hasattr(self._transport, "close"):
            self._transport.close()
        self._transport = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The client side: the httpx transport and the nouns of ``headwater.Client`` (project, flow, flow_run, kv)."""

from headwater_cloud_api.client.resources import FlowResource, FlowRunResource, KeyValueResource, ProjectResource
from headwater_cloud_api.client.transport import APIClientError, AuthenticationError, HttpTransport

__all__ = [
    "HttpTransport",
    "APIClientError",
    "AuthenticationError",
    "ProjectResource",
    "FlowResource",
    "FlowRunResource",
    "KeyValueResource",
]

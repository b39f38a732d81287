"""Scale-out on Ray Serve: the same APIs across replicas and machines (``pip install llamarun[cluster]``).

- :class:`ClusterSpec` / :class:`ModelSpec`: what runs (models by store name and digest, replicas,
  resources, slots), from the command line or a YAML file; :func:`serve_config` for ``serve run``.
- :func:`build_application`: the Ray Serve application: one deployment per model
  (:class:`~llamarun.cluster.replica.ModelReplica`, the model's runtime and ``llamarun serve``'s HTTP
  app) behind one ingress that applies the server's safety rules, routes by ``model``, prefers the
  replica holding a request's prefix (:class:`~llamarun.cluster.router.PrefixAffinityRouter`), and
  answers the cluster's view (``/api/tags``, ``/api/ps``, ``/metrics``).

Ray is imported only when a cluster is built or run.
"""

from .spec import ClusterSpec, ModelSpec, models_from_names, serve_config

__all__ = ["ClusterSpec", "ModelSpec", "build_application", "models_from_names", "serve_config"]


def build_application(spec: ClusterSpec) -> object:
    """The Ray Serve application of ``spec`` (see :mod:`llamarun.cluster.app`)."""
    from .app import build_application as build

    return build(spec)

"""PagerBridge: BigPanda incidents to PagerDuty and back, declared as Kubernetes resources.

One distribution holds two programs that share the models in :mod:`pagerbridge.api` and
the SaaS clients in :mod:`pagerbridge.clients`:

* the operator (:mod:`pagerbridge.controller`) reconciles the custom resources into a
  relay Deployment and its configuration;
* the relay (:mod:`pagerbridge.relay`) receives BigPanda and PagerDuty webhooks and
  delivers them to the other side through a durable outbox.
"""

__version__ = "0.1.0"

# The one image name: the Helm chart's image.repository and the operator's built-in relay
# image (used when neither the chart nor spec.relay.image names one) both come from here
# (tests/unit/chart check the chart against it).
IMAGE_REPOSITORY = "ghcr.io/pagerbridge/pagerbridge"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"

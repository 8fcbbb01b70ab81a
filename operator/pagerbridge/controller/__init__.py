"""The Kubernetes operator: kopf handlers that turn PagerBridge custom resources into a
running relay (children rendered by a pure function), its status, and the PagerDuty
webhook subscription. Handlers stay thin; everything they decide lives in pure modules
(``compile``, ``rendering``, ``conditions``) that unit tests call without a cluster."""

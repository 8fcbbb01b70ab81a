"""PagerBridge's dev kit: simulators, local control plane and demo (never in the image)."""

"""A real, local Kubernetes control plane for tests and the demo (the envtest pattern).

etcd, kube-apiserver and a kube-controller-manager limited to the garbage-collector and
namespace controllers run as local processes on loopback: no Docker, no kubelet. Binaries
come from ``hack/controlplane/build.sh`` (built once from the Go module proxy and cached).
"""

from pagerbridge_devkit.localcluster.binaries import Binaries, BinariesNotFound, find_binaries
from pagerbridge_devkit.localcluster.controlplane import ControlPlane, ControlPlaneError
from pagerbridge_devkit.localcluster.kubeconfig import service_account_kubeconfig

__all__ = [
    "Binaries",
    "BinariesNotFound",
    "ControlPlane",
    "ControlPlaneError",
    "find_binaries",
    "service_account_kubeconfig",
]

"""Real Kubernetes nodes on this machine: containerd + runc, CNI bridge networking, kubelets
and kube-proxy, joined to the control plane with node client certificates.

Layout, all on one Linux host and all inside the project's own addresses:

* ``HOST_IP`` (network.py) is every node's InternalIP, the API server's advertised address
  and where the host services that pods reach (PostgreSQL, the S3 server) listen.
* Each node has its own containerd (own root, state, socket and CNI config) — two kubelets
  must not share a runtime, or each would remove the other's pods — its own pod subnet on
  its own Linux bridge, its own cgroup parent, and ``systemReserved`` so the nodes differ
  in allocatable CPU and memory.
* One kube-proxy (iptables mode, masquerading every Service connection) serves both nodes,
  because they share one network namespace and its iptables tables.
* Pods may reach each other, the host and Services; a FORWARD rule refuses everything that
  would leave the pod network for any other address.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .controlplane import ControlPlane, write_kubeconfig
from .network import CLUSTER_CIDR, HOST_IP, run, setup_host_network
from .procs import PlatformError, Proc, free_ports, wait_until

CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
# Short fixed paths, because unix socket paths are limited to 107 bytes: containerd's
# sockets and state, and the kubelets' root directories (pod volumes, the pod-resources
# socket). One local cluster per machine holds them (see Nodes._take_machine).
RUN_ROOT = Path("/run/pravah")
# Every kubelet binds its device-plugin socket at this fixed path, whatever its --root-dir.
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
KUBELET_ROOT = Path("/var/lib/pravah")


@dataclass
class NodeSpec:
    """One kubelet. `reserved_*` is held back from the machine, so allocatable differs."""

    name: str
    index: int
    reserved_cpu: str = "0"
    reserved_memory: str = "0"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def subnet(self) -> str:
        return f"10.88.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.88.{self.index}.1"

    @property
    def bridge(self) -> str:
        return f"pravah-br{self.index}"

    @property
    def cgroup_root(self) -> str:
        return f"/pravah-{self.name}"


# node-a takes the runners (the whole machine); node-b, smaller, is the system pool where
# manifests/overlays/test places the operator and the API.
DEFAULT_NODES = (
    NodeSpec("node-a", 1, labels={"pravah.io/pool": "workers"}),
    NodeSpec("node-b", 2, reserved_cpu="1", reserved_memory="12Gi", labels={"pravah.io/pool": "system"}),
)


def require_tools() -> dict[str, str]:
    """Paths of the host programs the nodes need; PlatformError naming what is missing."""
    wanted = {"containerd": "containerd", "containerd-shim-runc-v2": "containerd", "runc": "runc",
              "ctr": "containerd", "iptables": "iptables", "ip": "iproute2"}
    found, missing = {}, []
    for tool, package in wanted.items():
        path = shutil.which(tool)
        if path:
            found[tool] = path
        else:
            missing.append(f"{tool} (Debian package {package})")
    cni = next((d for d in CNI_BIN_DIRS if Path(d, "bridge").exists()), None)
    if cni is None:
        missing.append("the CNI plugins bridge, host-local, loopback, portmap (Debian package "
                       "containernetworking-plugins)")
    if missing:
        raise PlatformError("real nodes need: " + ", ".join(missing) + "; run scripts/platform-prereqs")
    found["cni"] = cni
    return found


def _containerd_config(node: NodeSpec, base: Path, state: Path, cni_bin: str, sandbox_image: str) -> str:
    # Version 2 config of containerd 1.6 (Debian bookworm's).
    return f"""version = 2
root = "{base / 'root'}"
state = "{state}"
[grpc]
  address = "{state / 'containerd.sock'}"
[ttrpc]
  address = "{state / 'containerd-ttrpc.sock'}"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # Processes here lack CAP_SYS_RESOURCE: runc must not try to lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{base / 'net.d'}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""


def _cni_config(node: NodeSpec, base: Path) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": f"pravah-{node.name}",
        "plugins": [
            {"type": "bridge", "bridge": node.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(base / "ipam"),
                      "ranges": [[{"subnet": node.subnet, "gateway": node.gateway}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


class Node:
    """containerd + kubelet for one NodeSpec."""

    def __init__(self, spec: NodeSpec, workdir: Path, control_plane: ControlPlane, tools: dict[str, str],
                 sandbox_image: str) -> None:
        self.spec = spec
        self.dir = workdir / spec.name
        self.state = RUN_ROOT / spec.name
        self.kubelet_root = KUBELET_ROOT / spec.name
        self.cp = control_plane
        self.tools = tools
        self.sandbox_image = sandbox_image
        self.containerd: Proc | None = None
        self.kubelet: Proc | None = None
        self.kubelet_port, self.healthz_port = free_ports(2)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.tools["ctr"], "--address", str(self.socket), "-n", "k8s.io", *args, check=check)

    def start_runtime(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True, exist_ok=True)
        (self.dir / "net.d").mkdir(parents=True, exist_ok=True)
        (self.dir / "net.d" / "10-pravah.conflist").write_text(json.dumps(_cni_config(self.spec, self.dir), indent=1))
        config = self.dir / "containerd.toml"
        config.write_text(_containerd_config(self.spec, self.dir, self.state, self.tools["cni"], self.sandbox_image))
        self.containerd = Proc(f"containerd-{self.name}", [self.tools["containerd"], "--config", config],
                               self.dir / "containerd.log").start()
        wait_until(lambda: self.ctr("version", check=False).returncode == 0, 30,
                   f"containerd of {self.name}", interval=0.2, procs=[self.containerd])

    def import_images(self, archives: list[Path]) -> None:
        for archive in archives:
            self.ctr("images", "import", str(archive))

    def start_kubelet(self, pki, bin_dir: Path) -> None:
        ensure_cgroup(self.spec.cgroup_root)
        _unmount_under(self.kubelet_root)  # what a killed cluster left
        shutil.rmtree(self.kubelet_root, ignore_errors=True)
        cert = pki.issue(f"kubelet-{self.name}", f"system:node:{self.name}", orgs=("system:nodes",))
        kubeconfig = write_kubeconfig(self.dir / "kubelet.kubeconfig", self.cp.server, self.cp.ca, cert,
                                      f"system:node:{self.name}")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": self.spec.cgroup_root,
            "cgroupsPerQOS": True, "enforceNodeAllocatable": ["pods"],
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # Each kubelet removes the log directories of pods it does not know: one each.
            "podLogsDir": str(self.dir / "pod-logs"),
            "address": HOST_IP, "port": self.kubelet_port, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": self.healthz_port,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.cp.ca)}},
            "authorization": {"mode": "Webhook"},
            "systemReserved": {"cpu": self.spec.reserved_cpu, "memory": self.spec.reserved_memory},
            "failSwapOn": False, "serializeImagePulls": False,
            # The disk is shared with the host's work: evict only when it is really full,
            # and never garbage-collect the locally built images (no registry to pull from).
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                             "nodefs.inodesFree": "2%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "resolvConf": "/etc/resolv.conf", "clusterDomain": "cluster.local",
            "nodeStatusReportFrequency": "10s", "syncFrequency": "10s",
            "shutdownGracePeriod": "0s", "podPidsLimit": -1,
            "localStorageCapacityIsolation": True,
        }
        config_path = self.dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(config))
        labels = ",".join(f"{k}={v}" for k, v in self.spec.labels.items())
        argv = [bin_dir / "kubelet", f"--config={config_path}", f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}", f"--node-ip={HOST_IP}",
                f"--root-dir={self.kubelet_root}", f"--cert-dir={self.dir / 'kubelet-pki'}",
                "--v=1"]
        if labels:
            argv.append(f"--node-labels={labels}")
        self.kubelet = Proc(f"kubelet-{self.name}", argv, self.dir / "kubelet.log").start()

    def procs(self) -> list[Proc]:
        return [p for p in (self.containerd, self.kubelet) if p is not None]

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop(grace=10)
        # Pods outlive the kubelet (as on a real node): stop them through the runtime.
        if self.containerd is not None and self.containerd.alive():
            tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
            for task in tasks:
                self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            time.sleep(0.5 if tasks else 0)
            for task in tasks:
                self.ctr("tasks", "delete", "-f", task, check=False)
            self.containerd.stop(grace=10)
        for path in (self.dir, self.state, self.kubelet_root):
            _unmount_under(path)
        shutil.rmtree(self.kubelet_root, ignore_errors=True)


def bound_since(socket: Path, since: float) -> bool:
    """The socket file was created at or after `since` (a Unix time)."""
    try:
        return socket.stat().st_ctime >= since
    except FileNotFoundError:
        return False


CGROUP_MOUNT = Path("/sys/fs/cgroup")


def ensure_cgroup(name: str) -> None:
    """Create the cgroup a kubelet's `cgroupRoot` names in every hierarchy: the kubelet
    refuses to start when it is missing. On cgroup v1 a new cpuset starts empty, so it gets
    its parent's CPUs and memory nodes."""
    relative = name.strip("/")
    if (CGROUP_MOUNT / "cgroup.controllers").exists():  # v2: one unified hierarchy
        (CGROUP_MOUNT / relative).mkdir(parents=True, exist_ok=True)
        return
    for hierarchy in CGROUP_MOUNT.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink() or not (hierarchy / "cgroup.procs").exists():
            continue
        target = hierarchy / relative
        target.mkdir(parents=True, exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (target / knob).exists() and not (target / knob).read_text().strip():
                (target / knob).write_text((target.parent / knob).read_text())


def _unmount_under(path: Path) -> None:
    """Unmount what kubelet and containerd left mounted at or below `path` (deepest first;
    the kubelet bind-mounts its root directory onto itself)."""
    prefix = str(path) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for mount in sorted((m for m in mounts if m == str(path) or m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


class KubeProxy:
    """One kube-proxy for the host's network namespace."""

    def __init__(self, workdir: Path, control_plane: ControlPlane, node_name: str) -> None:
        self.dir = workdir / "kube-proxy"
        self.cp = control_plane
        self.node_name = node_name
        self.proc: Proc | None = None

    def start(self, pki, bin_dir: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cert = pki.issue("kube-proxy", "system:kube-proxy")
        kubeconfig = write_kubeconfig(self.dir / "kube-proxy.kubeconfig", self.cp.server, self.cp.ca, cert,
                                      "system:kube-proxy")
        metrics_port, healthz_port = free_ports(2)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": self.node_name,
            "bindAddress": HOST_IP,
            "metricsBindAddress": f"127.0.0.1:{metrics_port}", "healthzBindAddress": f"127.0.0.1:{healthz_port}",
            # Both nodes' pods sit on bridges of one host: masquerade every Service connection
            # so replies always come back through the host.
            "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
            # Leave the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "nodePortAddresses": [f"{HOST_IP}/32"],
        }
        config_path = self.dir / "kube-proxy.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self.proc = Proc("kube-proxy", [bin_dir / "kube-proxy", f"--config={config_path}", "--v=1"],
                         self.dir / "kube-proxy.log").start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=5)


class Nodes:
    """All nodes of one platform, with kube-proxy and the host network they share."""

    def __init__(self, control_plane: ControlPlane, workdir: Path, images, specs: tuple[NodeSpec, ...] = DEFAULT_NODES):
        self.cp = control_plane
        self.dir = Path(workdir)
        self.images = images
        self.specs = specs
        self.nodes: list[Node] = []
        self.proxy: KubeProxy | None = None
        self._lock: int | None = None

    @property
    def node_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def start(self, timeout: float = 180) -> Nodes:
        if os.geteuid() != 0:
            raise PlatformError("real nodes need root: kubelet, containerd and runc manage cgroups, mounts and "
                                "network namespaces")
        tools = require_tools()
        self._take_machine()
        self.dir.mkdir(parents=True, exist_ok=True)
        setup_host_network([(s.bridge, s.gateway) for s in self.specs])
        built = self.images.ensure()
        self.nodes = [Node(s, self.dir, self.cp, tools, built.pause) for s in self.specs]
        def prepare(node: Node) -> None:
            node.start_runtime()
            node.import_images(built.archives)

        # Each node's runtime imports the images (a few hundred MB) while the other does.
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(prepare, self.nodes))
        for node in self.nodes:
            # Two kubelets binding the shared device-plugin socket at once: one fails with
            # "address already in use" and exits. The next starts once this one has bound it.
            started = time.time()
            node.start_kubelet(self.cp.pki, self.cp.bin_dir)
            wait_until(lambda: bound_since(DEVICE_PLUGIN_SOCKET, started), 60,
                       f"kubelet-{node.name} to bind {DEVICE_PLUGIN_SOCKET}", interval=0.1, procs=node.procs())
        self.proxy = KubeProxy(self.dir, self.cp, self.specs[0].name)
        self.proxy.start(self.cp.pki, self.cp.bin_dir)
        wait_until(self.ready, timeout, f"nodes {', '.join(self.node_names)} to be Ready", interval=0.5,
                   procs=self.procs())
        return self

    def procs(self) -> list[Proc]:
        procs = [p for node in self.nodes for p in node.procs()]
        if self.proxy and self.proxy.proc:
            procs.append(self.proxy.proc)
        return procs

    def ready(self) -> bool:
        r = self.cp.kubectl("get", "nodes", "-o", "json", check=False, timeout=10)
        if r.returncode != 0:
            return False
        items = {i["metadata"]["name"]: i for i in json.loads(r.stdout)["items"]}
        for name in self.node_names:
            conds = {c["type"]: c["status"] for c in items.get(name, {}).get("status", {}).get("conditions", [])}
            if conds.get("Ready") != "True":
                return False
        return True

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def log_files(self) -> dict[str, Path]:
        return {p.name: p.log_path for p in self.procs()}

    def _take_machine(self) -> None:
        """Node names, bridges, cgroups and kube-proxy's iptables chains are the machine's:
        one local cluster at a time."""
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        fd = os.open(RUN_ROOT / "nodes.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode().strip()
            os.close(fd)
            raise PlatformError(f"another local cluster runs real nodes on this machine (pid {holder}); "
                                "stop it first (`pravah dev down`)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock = fd

    def stop(self) -> None:
        if self.proxy:
            self.proxy.stop()
        for node in self.nodes:
            node.stop()
        if self._lock is not None:
            _remove_pod_network_namespaces()
            os.close(self._lock)
            self._lock = None


def _remove_pod_network_namespaces() -> None:
    """The pods' network namespaces outlive their killed containers; removing them removes
    their veth pairs too. Only this cluster's exist: it holds the machine's node lock."""
    for netns in Path("/run/netns").glob("cni-*"):
        subprocess.run(["umount", "-l", str(netns)], capture_output=True, check=False)
        netns.unlink(missing_ok=True)

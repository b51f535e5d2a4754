"""Pravah's images (runner, operator, api) and the pause image, built here by scripts/images.

No registry is reachable from the test machines, so the images are built from the
project's Dockerfile with buildah on a Debian base made offline, exported as OCI archives
(cached by content), and imported into each node's containerd.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .bins import REPO_ROOT
from .procs import PlatformError

if TYPE_CHECKING:
    from .nodes import Nodes

IMAGES_SCRIPT = REPO_ROOT / "scripts" / "images"
PRAVAH_IMAGES = ("runner", "operator", "api")


@dataclass(frozen=True)
class BuiltImage:
    name: str  # repository:tag as containerd knows it
    archive: Path
    size: int  # bytes of the OCI archive

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


@dataclass(frozen=True)
class BuiltImages:
    images: dict[str, BuiltImage]  # runner, operator, api, pause

    @property
    def pause(self) -> str:
        return self.images["pause"].name

    @property
    def archives(self) -> list[Path]:
        return [image.archive for image in self.images.values()]

    def __getitem__(self, key: str) -> BuiltImage:
        return self.images[key]


class Images:
    """Builds (or reuses) the images once per process."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self._built: BuiltImages | None = None

    def ensure(self) -> BuiltImages:
        if self._built is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                r = subprocess.run([str(IMAGES_SCRIPT)], stdout=subprocess.PIPE, stderr=log, check=False)
            if r.returncode != 0:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise PlatformError(f"scripts/images failed ({r.returncode}); see {self.log_path}:\n{tail}")
            self._built = parse_images(r.stdout.decode())
        return self._built


def parse_images(text: str) -> BuiltImages:
    doc = json.loads(text)
    images = {key: BuiltImage(name=value["image"], archive=Path(value["archive"]), size=int(value["size"]))
              for key, value in doc.items()}
    missing = {*PRAVAH_IMAGES, "pause"} - images.keys()
    if missing:
        raise PlatformError(f"scripts/images did not report {', '.join(sorted(missing))}")
    return BuiltImages(images)


def tag_on_nodes(nodes: Nodes, image: BuiltImage, tag: str) -> str:
    """Give a built image a second tag in every node's containerd, as a registry serves a new
    release under a new tag: pods that name it start at once, with no registry to pull from.
    Returns the new reference."""
    reference = f"{image.repository}:{tag}"
    for name in nodes.node_names:
        nodes.node(name).ctr("images", "tag", "--force", image.name, reference)
    return reference

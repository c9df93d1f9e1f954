"""Runs pods' containers by image (``runtime.Runtime``); the container interface (``container``), image →
class (``images``) and probes (``probes``)."""

from meshlab.runtime.container import Container, ContainerContext, ContainerCrash, Idle
from meshlab.runtime.runtime import ContainerState, Runtime

__all__ = ["Runtime", "ContainerState", "Container", "ContainerContext", "ContainerCrash", "Idle"]

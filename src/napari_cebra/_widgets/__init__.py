"""Everything that needs Qt: magicgui widgets, thread workers, vispy plots, time linking.

Importing this package imports neither torch nor Qt; the widget modules do (Qt) when napari
opens a widget.
"""

from napari_cebra._widgets.demo import launch_demo

__all__ = ["launch_demo"]

"""Everything that needs Qt: magicgui widgets, thread workers, vispy plots, time linking."""

"""The command-line interface (``llmdispatcher``)."""

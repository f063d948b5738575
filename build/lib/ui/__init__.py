"""UI-side helpers shared by the pages: session state, cached models, error display. Only pages import this."""

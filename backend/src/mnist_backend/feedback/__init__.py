"""People's corrections of the page's answers: signed tokens, the store, its migrations."""

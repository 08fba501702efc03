"""One module per emulated resource provider; each exposes `routes(page_size)`."""

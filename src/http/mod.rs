//! HTTP listeners: session, API, upload/download, admin, CORS, TLS.

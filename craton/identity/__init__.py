"""Who a caller is: credentials Craton keeps itself (API keys). The API's auth strategies
(``craton.api.auth``) and craton-manage use this; it knows nothing of HTTP."""

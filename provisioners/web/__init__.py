"""Web hosts: accounts' unix users and directories (``home``), nginx or apache2 vhosts
(``vhosts``), PHP-FPM pools (``php``), and the operations the panel's tasks use on them
(``operations``); paths and values they share are in ``common``."""

from provisioners.web.common import (
    ACME_ROOT,
    ARCHIVE_DIR,
    LOG_DIR,
    PRIVATE_ROOT,
    WEB_DIRS,
    WWW_ROOT,
    WebSettings,
    docroot,
    home,
    key_dir,
    web_server,
)
from provisioners.web.home import WebHome
from provisioners.web.operations import WebOperations
from provisioners.web.php import PhpFpm
from provisioners.web.vhosts import (
    APACHE_ENABLED,
    NGINX_LIMITS,
    NGINX_MAIN_INCLUDE,
    NGINX_SYSTEMD_DROPIN,
    Apache2,
    Nginx,
)

__all__ = [
    "ACME_ROOT",
    "APACHE_ENABLED",
    "ARCHIVE_DIR",
    "LOG_DIR",
    "NGINX_LIMITS",
    "NGINX_MAIN_INCLUDE",
    "NGINX_SYSTEMD_DROPIN",
    "PRIVATE_ROOT",
    "WEB_DIRS",
    "WWW_ROOT",
    "Apache2",
    "Nginx",
    "PhpFpm",
    "WebHome",
    "WebOperations",
    "WebSettings",
    "docroot",
    "home",
    "key_dir",
    "web_server",
]

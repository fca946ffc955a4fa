"""The application detector on realistic version files, and on hostile or garbage ones."""

from __future__ import annotations

import pytest

from panel.apps.detect import PROBES, Detected, detect, version_key


def _detect(files: dict[str, str]) -> Detected | None:
    return detect(files.get)


WORDPRESS = """<?php
/**
 * WordPress Version
 *
 * Contains version information for the current WordPress release.
 *
 * @package WordPress
 * @since 1.2.0
 */

/**
 * The WordPress version string.
 *
 * Holds the current version number for WordPress core. Used to bust caches
 * and to enable development mode for scripts when running from the /src directory.
 *
 * @global string $wp_version
 */
$wp_version = '6.1.9';

/**
 * Holds the WordPress DB revision, increments when changes are made to the WordPress DB schema.
 *
 * @global int $wp_db_version
 */
$wp_db_version = 53496;

$tinymce_version = '49110-20201110';
$required_php_version = '5.6.20';
$required_mysql_version = '5.0';
"""

DRUPAL = """<?php

namespace Drupal;

use Drupal\\Core\\DependencyInjection\\ContainerNotInitializedException;

/**
 * Static Service Container wrapper.
 */
class Drupal {

  /**
   * The current system version.
   */
  const VERSION = '10.1.5';

  /**
   * Core API compatibility.
   */
  const CORE_COMPATIBILITY = '8.x';

  /**
   * Core minimum schema version.
   */
  const CORE_MINIMUM_SCHEMA_VERSION = 8000;
}
"""

DRUPAL7 = """<?php

/**
 * @file
 * Functions that need to be loaded on every Drupal request.
 */

/**
 * The current system version.
 */
define('VERSION', '7.98');

/**
 * Core API compatibility.
 */
define('DRUPAL_CORE_COMPATIBILITY', '7.x');

/**
 * Minimum supported version of PHP.
 */
define('DRUPAL_MINIMUM_PHP', '5.2.4');
"""

MEDIAWIKI = """<?php
/**
 * A few constants that might be needed during LocalSettings.php.
 *
 * @file
 */

use Wikimedia\\Rdbms\\IDatabase;

/**
 * The running version of MediaWiki.
 *
 * This replaces the $wgVersion global found in earlier versions. When updating,
 * remember to also bump the stand-alone duplicate of this in PHPVersionCheck.
 *
 * @since 1.35 (also backported to 1.33.3 and 1.34.1)
 */
define( 'MW_VERSION', '1.39.17' );

/** Obsolete IDatabase::makeList() constants */
define( 'LIST_COMMA', IDatabase::LIST_COMMA );
"""

MEDIAWIKI_OLD = """<?php
/**
 * Default values for MediaWiki configuration settings.
 */
if ( !defined( 'MEDIAWIKI' ) ) {
	echo "This file is part of MediaWiki and is not a valid entry point\\n";
	die( 1 );
}

$wgConf = new SiteConfiguration;

/**
 * MediaWiki version number
 * @since 1.2
 */
$wgVersion = '1.31.0';

/**
 * Name of the site. It must be changed in LocalSettings.php
 */
$wgSitename = 'MediaWiki';
"""

JOOMLA4 = """<?php

/**
 * Joomla! Content Management System
 */

namespace Joomla\\CMS;

\\defined('JPATH_PLATFORM') or die;

final class Version
{
    /**
     * Product name.
     */
    public const PRODUCT = 'Joomla!';

    /**
     * Major release version.
     */
    public const MAJOR_VERSION = 4;

    /**
     * Minor release version.
     */
    public const MINOR_VERSION = 3;

    /**
     * Patch release version.
     */
    public const PATCH_VERSION = 2;

    /**
     * Extra release version info.
     */
    public const EXTRA_VERSION = '';

    /**
     * Development status.
     */
    public const DEV_STATUS = 'Stable';

    public const CODENAME = 'Bora';
    public const RELDATE = '29-May-2023';
}
"""

JOOMLA3 = """<?php
/**
 * @package     Joomla.Libraries
 * @subpackage  Version
 */

defined('JPATH_PLATFORM') or die;

/**
 * Version information class for the Joomla CMS.
 */
final class JVersion
{
	/** @var  string  Product name. */
	public $PRODUCT = 'Joomla!';

	/** @var  string  Release version. */
	public $RELEASE = '3.6';

	/** @var  string  Maintenance version. */
	public $DEV_LEVEL = '5';

	/** @var  string  Development STATUS. */
	public $DEV_STATUS = 'Stable';

	/** @var  string  Build number. */
	public $BUILD = '';
}
"""


@pytest.mark.parametrize(
    ("files", "app", "version"),
    [
        ({"wp-includes/version.php": WORDPRESS}, "wordpress", "6.1.9"),
        ({"core/lib/Drupal.php": DRUPAL}, "drupal", "10.1.5"),
        ({"includes/bootstrap.inc": DRUPAL7}, "drupal", "7.98"),
        ({"includes/Defines.php": MEDIAWIKI}, "mediawiki", "1.39.17"),
        ({"includes/DefaultSettings.php": MEDIAWIKI_OLD}, "mediawiki", "1.31.0"),
        ({"VERSION": '2022-07-31b "Igor"\n'}, "dokuwiki", "2022-07-31b"),
        ({"VERSION": '2018-04-22 "Greebo"\n'}, "dokuwiki", "2018-04-22"),
        ({"libraries/src/Version.php": JOOMLA4}, "joomla", "4.3.2"),
        ({"libraries/cms/version/version.php": JOOMLA3}, "joomla", "3.6.5"),
    ],
)
def test_each_app_and_format(files: dict[str, str], app: str, version: str) -> None:
    assert _detect(files) == Detected(app, version)
    assert set(files) <= set(PROBES)


def test_mediawiki_1_35_and_later_keeps_wgversion_as_a_constant() -> None:
    """From 1.35 DefaultSettings.php says `$wgVersion = MW_VERSION;`: Defines.php is read."""
    files = {
        "includes/DefaultSettings.php": "<?php\n$wgVersion = MW_VERSION;\n",
        "includes/Defines.php": MEDIAWIKI,
    }
    assert _detect(files) == Detected("mediawiki", "1.39.17")
    assert _detect({"includes/DefaultSettings.php": "<?php\n$wgVersion = MW_VERSION;\n"}) is None


def test_joomla_extra_version() -> None:
    text = JOOMLA4.replace("EXTRA_VERSION = ''", "EXTRA_VERSION = 'rc1'")
    assert _detect({"libraries/src/Version.php": text}) == Detected("joomla", "4.3.2-rc1")


def test_joomla_3_constants() -> None:
    text = "<?php\nfinal class JVersion {\n\tconst RELEASE = '3.7';\n\tconst DEV_LEVEL = '5';\n}\n"
    assert _detect({"libraries/cms/version/version.php": text}) == Detected("joomla", "3.7.5")


def test_nothing_known() -> None:
    assert _detect({}) is None
    assert _detect({"index.php": "<?php echo 'hello';"}) is None


@pytest.mark.parametrize(
    "files",
    [
        {"wp-includes/version.php": "$wp_version = '6.1.9; rm -rf /';"},
        {"wp-includes/version.php": "$wp_version = '../../etc/passwd';"},
        {"wp-includes/version.php": "$wp_version = '<script>alert(1)</script>';"},
        {"wp-includes/version.php": "$wp_version = '" + "1" * 41 + "';"},
        {"wp-includes/version.php": "$wp_version = '';"},
        {"wp-includes/version.php": "// $wp_version = '6.1.9';"},
        {"wp-includes/version.php": "$wp_version = 'beta';"},
        {"wp-includes/version.php": "$wp_version = '6.1.9';\n$wp_version = '9.9.9';\n"},
        {"wp-includes/version.php": '$wp_version = "6.1.9";'},
        {"wp-includes/version.php": "\x00\xff\xfe garbage \x1b[31m"},
        {"core/lib/Drupal.php": "const VERSION = '10.1.5\n';"},
        {"includes/bootstrap.inc": "define('VERSION', $_GET['v']);"},
        {"includes/Defines.php": "define( 'MW_VERSION', '1.39.17 ' );"},
        {"includes/DefaultSettings.php": "$wgVersion = '1.31.0' . $x;"},
        {"VERSION": '2022-07-31b "Igor"\nrm -rf /\n'},
        {"VERSION": "not a date"},
        {"VERSION": "2022-07-31b\x00"},
        {"VERSION": "2022-7-31"},
        {"libraries/src/Version.php": "const MAJOR_VERSION = 4;\nconst MINOR_VERSION = 3;\n"},
        {
            "libraries/src/Version.php": JOOMLA4.replace(
                "EXTRA_VERSION = ''", "EXTRA_VERSION = ';x'"
            )
        },
        {"libraries/cms/version/version.php": "public $RELEASE = '3.6';"},
        {"libraries/cms/version/version.php": "public $RELEASE = 'x';\npublic $DEV_LEVEL = '5';"},
    ],
)
def test_hostile_or_garbage_is_none(files: dict[str, str]) -> None:
    assert _detect(files) is None


def test_reader_sees_only_probes() -> None:
    asked: list[str] = []

    def read(relpath: str) -> str | None:
        asked.append(relpath)
        return None

    assert detect(read) is None
    assert set(asked) == set(PROBES)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.39.9", "1.39.10"),
        ("6.1", "6.1.1"),
        ("6.1.9", "6.2"),
        ("4.3.2-rc1", "4.3.2"),
        ("10.1.5", "10.2.0"),
        ("7.98", "7.100"),
        ("2022-07-31", "2022-07-31a"),
        ("2022-07-31a", "2022-07-31b"),
        ("2018-04-22c", "2020-07-29"),
        ("rc2022-06-26", "2022-07-31"),
    ],
)
def test_version_key_orders(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)
    assert sorted([newer, older], key=version_key) == [older, newer]


def test_version_key_equal() -> None:
    assert version_key("1.39.17") == version_key("1.39.17")

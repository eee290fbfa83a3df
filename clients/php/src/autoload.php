<?php

// For use without Composer: require this file to load the client classes.

declare(strict_types=1);

require_once __DIR__ . '/Error.php';
require_once __DIR__ . '/ConnectionError.php';
require_once __DIR__ . '/ServerError.php';
require_once __DIR__ . '/Client.php';
require_once __DIR__ . '/SessionHandler.php';

<?php
// Installs Sessiond\SessionHandler for the session; used as
// auto_prepend_file by the end-to-end tests, with the server's address in
// SESSIOND_ADDRESS.

declare(strict_types=1);

require_once __DIR__ . '/../src/autoload.php';

Sessiond\SessionHandler::register(new Sessiond\Client(getenv('SESSIOND_ADDRESS') ?: 'tcp://127.0.0.1:6390'));

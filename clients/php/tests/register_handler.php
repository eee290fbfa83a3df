<?php
// Installs Sessiond\SessionHandler for the session; used as
// auto_prepend_file by the end-to-end tests, with the server's address in
// SESSIOND_ADDRESS and, on a server with users, the login in SESSIOND_USER
// and SESSIOND_PASSWORD.

declare(strict_types=1);

require_once __DIR__ . '/../src/autoload.php';

Sessiond\SessionHandler::register(new Sessiond\Client(
    getenv('SESSIOND_ADDRESS') ?: 'tcp://127.0.0.1:6390',
    user: getenv('SESSIOND_USER') ?: null,
    password: getenv('SESSIOND_PASSWORD') ?: null,
));

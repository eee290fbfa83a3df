<?php

declare(strict_types=1);

namespace Sessiond;

/** The network failed, or the server closed the connection. */
final class ConnectionError extends Error
{
}

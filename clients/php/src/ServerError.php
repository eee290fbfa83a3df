<?php

declare(strict_types=1);

namespace Sessiond;

/**
 * The server answered with an error. `$errorCode` is its first word:
 * NOSESSION, EXISTS, LOCKED, STALEKEY, READONLY, LIMIT, ERR, ...
 */
final class ServerError extends Error
{
    public function __construct(public readonly string $errorCode, string $message)
    {
        parent::__construct($errorCode . ' ' . $message);
    }
}

<?php
// A tiny assertion helper for the PHP test scripts: the first failed check
// prints what and where, and exits 1.

declare(strict_types=1);

function check(bool $ok, string $what): void
{
    if (!$ok) {
        $at = debug_backtrace()[0];
        fwrite(STDERR, "FAILED: $what at {$at['file']}:{$at['line']}\n");
        exit(1);
    }
}

function same(mixed $expected, mixed $got, string $what): void
{
    check($expected === $got, $what . ': expected ' . var_export($expected, true) . ', got ' . var_export($got, true));
}

/** Runs `$f` and returns the warning it raised (or null), keeping it off the output. */
function warning_of(callable $f): ?string
{
    $warning = null;
    set_error_handler(function (int $no, string $msg) use (&$warning) {
        $warning = $msg;
        return true;
    });
    try {
        $f();
    } finally {
        restore_error_handler();
    }
    return $warning;
}

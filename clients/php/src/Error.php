<?php

declare(strict_types=1);

namespace Sessiond;

/** Anything that went wrong talking to sessiond. */
class Error extends \RuntimeException
{
}

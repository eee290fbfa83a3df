<?php
// Every msession_* function against a real sessiond, as a legacy app would
// call them. Usage: php msession_test.php HOST PORT

declare(strict_types=1);

require __DIR__ . '/../msession.php';
require __DIR__ . '/check.php';

[, $host, $port] = $argv;

check(warning_of(fn () => same(false, msession_count(), 'before connect')) !== null, 'warns before connect');
same(true, msession_connect($host, $port), 'connect');

same(true, msession_create('legacy1', 'shop', 'blob'), 'create');
check(warning_of(fn () => same(false, msession_create('legacy1'), 'create taken')) !== null, 'warns on a taken id');
same(true, msession_create('legacy2'), 'create plain');
same(2, msession_count(), 'count');
$all = msession_list();
sort($all);
same(['legacy1', 'legacy2'], $all, 'list');

same(true, msession_set('legacy1', 'user', '42'), 'set');
same('42', msession_get('legacy1', 'user', 'none'), 'get');
same('none', msession_get('legacy1', 'missing', 'none'), 'get default');
msession_set_array('legacy2', ['user' => '42', 'cart' => '3']);
same(['cart' => '3', 'user' => '42'], msession_get_array('legacy2'), 'get_array');
$found = msession_find('user', '42');
sort($found);
same(['legacy1', 'legacy2'], $found, 'find');
msession_set('legacy2', 'role', 'admin');
msession_set('legacy1', 'role', 'editor');
$listed = msession_listvar('role');
ksort($listed);
same(['admin' => 'legacy2', 'editor' => 'legacy1'], $listed, 'listvar: value => session');
same(['42' => 'legacy1'], msession_listvar('user'), 'listvar: a shared value shows one session');

same('1', msession_inc('legacy1', 'visits'), 'inc from nothing');
same('2', msession_inc('legacy1', 'visits'), 'inc');

same('blob', msession_get_data('legacy1'), 'get_data');
same(true, msession_set_data('legacy1', 'new blob'), 'set_data');
same('new blob', msession_get_data('legacy1'), 'get_data after set');

same(600, msession_timeout('legacy1', 600), 'timeout set');
same(600, msession_timeout('legacy1'), 'timeout get');

$key = msession_lock('legacy1');
check(is_int($key) && $key > 0, 'lock returns the key');
same($key, msession_unlock('legacy1', $key), 'unlock');
check(warning_of(fn () => same(false, msession_unlock('legacy1', $key), 'unlock twice')) !== null, 'stale key warns');

$id = msession_uniq(32, 'shop');
check(is_string($id) && strlen($id) === 32, 'uniq of 32');
same(22, strlen(msession_uniq(8)), 'uniq never below 22 characters');
same(12, strlen(msession_randstr(12)), 'randstr');
same('1', msession_plugin('legacy2', 'visit', '/home'), 'plugin');
same('2', msession_plugin('legacy2', 'visit', '/cart'), 'plugin again');
check(warning_of(fn () => same(false, msession_plugin('legacy1', 'nope'), 'no such plugin')) !== null, 'an unknown plugin warns');

same(true, msession_destroy('legacy1'), 'destroy');
check(warning_of(fn () => same(false, msession_destroy('legacy1'), 'destroy twice')) !== null, 'destroying a missing session warns');
msession_disconnect();
check(warning_of(fn () => same(false, msession_list(), 'after disconnect')) !== null, 'warns after disconnect');
echo "ok\n";

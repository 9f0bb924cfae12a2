'use strict';
// The Node.js helper under test, pg-lambdaguard-context (clients/node/index.js
// of this repository), required by path: run.sh copies it next to the suite
// when it runs from a temp copy; run in place, it is read from the checkout.
const fs = require('node:fs');
const path = require('node:path');

const copied = path.join(__dirname, '..', 'pg-lambdaguard-context', 'index.js');
const inTree = path.join(__dirname, '..', '..', '..', 'clients', 'node', 'index.js');

module.exports = require(fs.existsSync(copied) ? copied : inTree);

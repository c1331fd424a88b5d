#!/usr/bin/env node
// The `conveyor` command: TypeScript sources run through tsx, no build step.
'use strict';
require('tsx/cjs');
require('../cli/main.ts');

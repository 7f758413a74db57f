// Bundles the functions (infra/build.mjs: esbuild, minified, source maps) whenever the framework
// packages them, so `npx serverless deploy` and `npx serverless package` never ship a stale or
// missing dist/. Set BERTH_SKIP_BUILD=1 to package what dist/ already holds.
'use strict';

const { execFileSync } = require('node:child_process');
const path = require('node:path');

class BerthBuild {
  constructor(serverless) {
    const build = () => {
      if (process.env.BERTH_SKIP_BUILD === '1') return;
      execFileSync(process.execPath, [path.join(serverless.serviceDir, 'infra/build.mjs')], { cwd: serverless.serviceDir, stdio: 'inherit' });
    };
    this.hooks = {
      'before:package:createDeploymentArtifacts': build,
      'before:deploy:function:packageFunction': build,
    };
  }
}

module.exports = BerthBuild;

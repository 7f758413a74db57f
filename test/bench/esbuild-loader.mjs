// Module resolution hook (see esbuild-hook.mjs): only infra/build.mjs's `esbuild` is redirected.
export async function resolve(specifier, context, next) {
  if (specifier === 'esbuild' && context.parentURL?.endsWith('/infra/build.mjs')) {
    return { url: new URL('./esbuild-wrapper.mjs', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}

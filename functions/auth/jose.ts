/**
 * The parts of jose that tokens.ts uses, as one module to load with `import()`: importing 'jose'
 * itself dynamically would bring the whole library (60 kB against 19 kB), as a namespace cannot
 * be tree-shaken.
 */
export { errors, jwtVerify, SignJWT } from 'jose';

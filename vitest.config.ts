import ts from 'typescript';
import { defineConfig, type Plugin } from 'vitest/config';

/**
 * Compiles test and source files with the TypeScript compiler itself, using the decorator
 * settings of the given tsconfig, so each project runs the code exactly as `tsc` would emit it
 * (the default transformer cannot lower TC39 standard decorators).
 */
export function typescript(configFile: string): Plugin {
  const { config, error } = ts.readConfigFile(configFile, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, process.cwd(), undefined, configFile);
  const compilerOptions: ts.CompilerOptions = {
    ...options,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    sourceMap: true,
    inlineSourceMap: false,
    noEmit: false,
  };
  return {
    name: `typescript:${configFile}`,
    enforce: 'pre',
    transform(code, id) {
      if (!id.endsWith('.ts') || id.includes('/node_modules/')) return null;
      const out = ts.transpileModule(code, { compilerOptions, fileName: id });
      return { code: out.outputText, map: out.sourceMapText ?? null };
    },
  };
}

const unit = ['test/**/*.test.ts'];
const shared = { testTimeout: 30_000, hookTimeout: 60_000 };

export default defineConfig({
  test: {
    projects: [
      {
        oxc: false,
        plugins: [typescript('./tsconfig.json')],
        test: {
          ...shared,
          name: 'legacy',
          include: unit,
          exclude: ['test/**/*.standard.test.ts'],
          // As in a NestJS application, reflect-metadata is loaded before any decorated class.
          setupFiles: ['reflect-metadata'],
        },
      },
      {
        oxc: false,
        plugins: [typescript('./tsconfig.standard.json')],
        test: { ...shared, name: 'standard', include: unit, exclude: ['test/**/*.legacy.test.ts'] },
      },
    ],
  },
});

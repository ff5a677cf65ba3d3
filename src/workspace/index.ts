/**
 * The run's workspace (types.ts): the two modes behind one interface, and the one place that picks between them.
 */
import type { WorkspaceMode } from '../config.js';
import { CopyWorkspace } from './copy.js';
import { MountWorkspace } from './mount.js';
import type { Workspace, WorkspaceContext } from './types.js';

export type { KeptWork, Workspace, WorkspaceContext } from './types.js';

/** The workspace of a run in `mode` (preflight decided it); nothing is done until its {@link Workspace.prepare}. */
export function createWorkspace(mode: WorkspaceMode, run: WorkspaceContext): Workspace {
  return mode === 'mount' ? new MountWorkspace(run) : new CopyWorkspace(run);
}

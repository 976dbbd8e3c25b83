// Shapes the OpenAPI document types only as `Object` (the server's core types are passed
// through as JSON): variable definitions, validation rules, model configuration, the
// metrics report and the live event frames. Everything else comes from `schema.d.ts`,
// generated from the server's `/api/openapi.json` by `npm run gen:api`.
import type { components } from './schema';

export type Schemas = components['schemas'];
export type PromptSummary = Schemas['Prompt'];
export type PromptDto = Schemas['PromptDto'];
export type VersionDto = Schemas['PromptVersion'];
export type PromptPage = Schemas['PromptPage'];
export type VersionPage = Schemas['VersionPage'];
export type Execution = Schemas['Execution'];
export type ExecutionPage = Schemas['ExecutionPage'];
export type ApiKey = Schemas['ApiKeyDto'];
export type ApiKeyList = Schemas['ApiKeyList'];
export type User = Schemas['UserDto'];
export type CreatePromptRequest = Schemas['CreatePromptRequest'];
export type UpdatePromptRequest = Schemas['UpdatePromptRequest'];
export type ExecutePromptRequest = Schemas['ExecutePromptRequest'];

export type VariableType = 'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'json';
export const VARIABLE_TYPES: readonly VariableType[] = ['string', 'number', 'integer', 'boolean', 'enum', 'json'];

export interface VariableDefinition {
  name: string;
  type: VariableType;
  required?: boolean;
  description?: string;
  defaultValue?: unknown;
  values?: string[];
  schema?: unknown;
  maxLength?: number;
}

export type ValidationRule =
  | { type: 'json' }
  | { type: 'json_schema'; schema: unknown }
  | { type: 'regex'; pattern: string }
  | { type: 'min_length'; value: number }
  | { type: 'max_length'; value: number }
  | { type: 'contains'; value: string }
  | { type: 'not_contains'; value: string };
export type ValidationType = ValidationRule['type'];
export const VALIDATION_TYPES: readonly ValidationType[] = [
  'json',
  'json_schema',
  'regex',
  'min_length',
  'max_length',
  'contains',
  'not_contains',
];

export interface ModelParameters {
  temperature?: number;
  topP?: number;
  maxCompletionTokens?: number;
  stop?: string[];
  seed?: number;
}

export interface ModelConfig {
  provider?: string;
  model: string;
  parameters?: ModelParameters;
}

export type ExecutionStatus = 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
export const EXECUTION_STATUSES: readonly ExecutionStatus[] = ['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'];
export const FINAL_STATUSES: readonly string[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export interface ExecutionErrorInfo {
  code: string;
  message: string;
  transient: boolean;
}

export interface ValidationVerdict {
  passed: boolean;
  results: { rule: string; passed: boolean; reason?: string }[];
}

export interface TokenUsage {
  input: number;
  output: number;
  cached?: number;
  reasoning?: number;
  total: number;
  estimated?: boolean;
}

/** A frame of `/api/ws`: a snapshot first (one execution), then events. */
export type EventFrame =
  | { kind: 'snapshot'; execution: Execution }
  | {
      kind: 'queued' | 'running' | 'retry_scheduled' | 'partial' | 'completed' | 'failed' | 'cancelled';
      executionId: string;
      status: ExecutionStatus;
      attempt?: number;
      at?: string;
      error?: ExecutionErrorInfo;
      runAfter?: string;
      delta?: string;
    };

export type Percentiles = Schemas['Percentiles'];
export type MetricsSummary = Schemas['MetricsSummary'];
/** `GET /api/metrics`; with a prompt filter also `byVersion` (each version's share) and `byLabel`. */
export type MetricsReport = Schemas['MetricsReport'];
export type Bucket = Schemas['Granularity'];
/** One bucket of `GET /api/metrics/series`: the executions created in it. */
export type SeriesPoint = Schemas['SeriesPoint'];
/** `GET /api/metrics/series`: points oldest first; buckets without executions are left out. */
export type MetricsSeries = Schemas['MetricsSeries'];

export type Dataset = Schemas['Dataset'];
export type DatasetPage = Schemas['DatasetPage'];
export type DatasetRow = Schemas['DatasetRow'];
export type RowPage = Schemas['RowPage'];
export type Experiment = Schemas['Experiment'];
export type ExperimentPage = Schemas['ExperimentPage'];
export type ExperimentView = Schemas['ExperimentView'];
export type ExperimentProgress = Schemas['ExperimentProgress'];
export type Comparison = Schemas['Comparison'];
export type MatchRule = Schemas['MatchRule'];
export const MATCH_RULES: readonly MatchRule[] = ['exact', 'json_equal', 'contains', 'regex'];
export type Label = Schemas['LabelDto'];
export type LabelList = Schemas['LabelList'];
export type LabelHistory = Schemas['LabelHistory'];
export type LabelMove = Schemas['LabelMoveDto'];
export type SetLabelRequest = Schemas['SetLabelRequest'];
export type VersionDiff = Schemas['DiffDto'];
/** A model diff entry: one changed field by dotted path. */
export interface FieldChange {
  field: string;
  from?: unknown;
  to?: unknown;
}
/** The variables part of a diff. */
export interface VariablesDiff {
  added: VariableDefinition[];
  removed: VariableDefinition[];
  changed: { name: string; from: VariableDefinition; to: VariableDefinition }[];
}
/** The validations part of a diff. */
export interface ValidationsDiff {
  added: ValidationRule[];
  removed: ValidationRule[];
}

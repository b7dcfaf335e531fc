// The one criteria language (F1.3). Other modules import from here only.
export { compileCriteria, fieldSortExpression } from './compile.ts';
export {
  addDays,
  type DayRange,
  dayRangeToInstants,
  type InstantRange,
  localDayStart,
  localToday,
  RELATIVE_OPS,
  relativeDayRange,
} from './dates.ts';
export { evaluateCriteria } from './evaluate.ts';
export { OPERATORS, operatorsFor, SYSTEM_FIELDS } from './operators.ts';
export { parsePattern } from './pattern.ts';
export { ConditionError, type ConditionKind, registerConditionKind } from './registry.ts';
export {
  type ConditionNode,
  type CriteriaAst,
  type CriteriaContext,
  type CriteriaInput,
  conditionSchema,
  criteriaSchema,
  type EvalRecord,
  type FieldNode,
  type FieldRef,
  type KindConditionInput,
  type ModuleInfo,
  type PatternNode,
  type RelatedNode,
} from './types.ts';
export { validateCriteria } from './validate.ts';

// Condition kinds defined by other modules register on import, so every user of criteria has them.
import '../../tracking/status-criteria.ts';

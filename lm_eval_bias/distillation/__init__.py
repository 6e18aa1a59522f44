"""Knowledge distillation of controlled students: loss, student construction, corpus, Trainer.

    loss.py     α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE, a pure function
    student.py  teacher/student loading, a smaller student made from the teacher's layers, vocabulary checks
    corpus.py   text files, a Hub dataset, or teacher-generated sequences; collators
    trainer.py  DistillationTrainer (transformers.Trainer + compute_loss), distill(DistillConfig)

The teacher record a checkpoint carries is in lm_eval_bias/distillation_record.py, outside this
package, so that the harness wrappers read it without importing this package. The package imports
nothing heavy itself: import the module you need.
"""

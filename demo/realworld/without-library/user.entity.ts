import { Column, Entity, OneToMany, PrimaryGeneratedColumn } from 'typeorm';
import { ArticleEntity } from './article.entity.js';

@Entity('user')
export class UserEntity {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 100 })
  username!: string;

  @Column({ type: 'varchar', length: 200 })
  email!: string;

  @Column({ type: 'varchar', length: 300, default: '' })
  bio!: string;

  @Column({ type: 'varchar', length: 200 })
  password!: string;

  @OneToMany(
    () => ArticleEntity,
    (article) => article.author,
  )
  articles!: ArticleEntity[];
}
